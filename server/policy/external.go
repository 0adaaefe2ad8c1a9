package policy

import (
	"fmt"
	"os"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// External is what the policy says about external plugins: the keys
// plugins.external and plugins.strict, which are not plugin settings
// (plugins.<name>.<key>) but the list of directories the operator trusts.
type External struct {
	// Dirs are the plugin directories (plugins.external), absolute;
	// relative entries resolve against the policy file's directory.
	Dirs []string
	// Strict stops the server when any plugin directory is bad
	// (plugins.strict); without it a bad plugin is left out and logged.
	Strict bool
}

// externalKeys are the keys of the plugins section that are not plugin
// names.
var externalKeys = map[string]bool{"external": true, "strict": true}

// takeExternal removes plugins.external and plugins.strict from the YAML
// tree and decodes them into p.External, so the rest of the plugins
// section stays a map of plugin settings.
func (p *Policy) takeExternal(d *decoder, root *yaml.Node) error {
	if root == nil || root.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "plugins" || root.Content[i+1].Kind != yaml.MappingNode {
			continue
		}
		sec := root.Content[i+1]
		var keep []*yaml.Node
		for j := 0; j+1 < len(sec.Content); j += 2 {
			k, v := sec.Content[j], sec.Content[j+1]
			if !externalKeys[k.Value] {
				keep = append(keep, k, v)
				continue
			}
			key := "plugins." + k.Value
			if _, seen := d.lines[key]; seen {
				return d.errf(k, key, "duplicate key")
			}
			var err error
			switch k.Value {
			case "external":
				err = d.decode(v, key, reflect.ValueOf(&p.External.Dirs).Elem(), pathMode)
			case "strict":
				err = d.decode(v, key, reflect.ValueOf(&p.External.Strict).Elem(), literal)
			}
			if err != nil {
				return err
			}
			d.lines[key] = k.Line
		}
		sec.Content = keep
	}
	return nil
}

// validateExternal makes the plugin directories absolute and checks each
// is a directory.
func (p *Policy) validateExternal(d *decoder) error {
	seen := map[string]bool{}
	for i, dir := range p.External.Dirs {
		key := fmt.Sprintf("plugins.external[%d]", i)
		if dir == "" {
			return &Error{File: p.source, Line: d.lineOf(key), Key: key, Msg: "empty plugin directory"}
		}
		dir = p.abs(dir)
		if seen[dir] {
			return &Error{File: p.source, Line: d.lineOf(key), Key: key, Msg: fmt.Sprintf("%s is listed twice", dir)}
		}
		seen[dir] = true
		p.External.Dirs[i] = dir
		if st, err := os.Stat(dir); err == nil && !st.IsDir() {
			return &Error{File: p.source, Line: d.lineOf(key), Key: key, Msg: fmt.Sprintf("%s is not a directory (name the directory that holds manifest.yaml)", dir)}
		}
	}
	return nil
}
