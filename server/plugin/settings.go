package plugin

import "fmt"

// Configurable is implemented by a plugin that reads settings from the
// policy's plugins.<name> section after its factory returns. SettingKeys
// names every key it may read. The server refuses any other key under
// plugins.<name> (a typo is an error, never a silent fall-back to the
// default): a plugin that does not implement Configurable may be given
// only the keys its factory reads through [Host.Setting].
type Configurable interface {
	SettingKeys() []string
}

// SettingError is a bad plugin setting. A factory that returns one (or
// wraps one) lets the server point at the key in the policy file.
type SettingError struct {
	Plugin string // the plugin's registration name
	Key    string // the key under plugins.<Plugin>
	Err    error  // what is wrong with the value
}

func (e *SettingError) Error() string {
	return fmt.Sprintf("plugins.%s.%s: %v", e.Plugin, e.Key, e.Err)
}

func (e *SettingError) Unwrap() error { return e.Err }
