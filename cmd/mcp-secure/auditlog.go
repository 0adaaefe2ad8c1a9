package main

import (
	"fmt"
	"sync"

	"github.com/mcp-secure/mcp-secure/server/audit"
	"github.com/mcp-secure/mcp-secure/server/policy"
)

// openAuditLog opens the policy's audit log as every writer of it must:
// the file with the policy's durability and rotation, the fingerprint
// key beside it, what audit.include leaves out, and the mask rules of
// masker (the policy's engine). opts gives the rest (labels, stderr log,
// tee); the fields the policy decides are overwritten. It returns the
// key too, for the redactors of stderr and spans.
func openAuditLog(pol *policy.Policy, masker audit.Masker, opts audit.Options) (*audit.Logger, []byte, error) {
	return openAuditLogKey(pol, masker, opts, startKey(pol))
}

// startKey starts loading the fingerprint key of pol's audit log (see
// audit.LoadKey) and returns the function that waits for it. On the first
// start the key is created and synced to disk, which can take long: serve
// starts it early and does the rest of its start meanwhile.
func startKey(pol *policy.Policy) func() ([]byte, error) {
	type loaded struct {
		key []byte
		err error
	}
	c := make(chan loaded, 1)
	go func() {
		key, err := audit.LoadKey(audit.KeyPath(pol.Audit.LogFile))
		c <- loaded{key, err}
	}()
	return sync.OnceValues(func() ([]byte, error) {
		l := <-c
		return l.key, l.err
	})
}

// openAuditLogKey is openAuditLog with the key from loadKey (startKey).
func openAuditLogKey(pol *policy.Policy, masker audit.Masker, opts audit.Options, loadKey func() ([]byte, error)) (*audit.Logger, []byte, error) {
	sink, err := audit.Open(pol.Audit.LogFile, &audit.FileOptions{
		Sync:      pol.Audit.Durability == "fsync",
		MaxSize:   pol.Audit.MaxSizeBytes,
		Retention: *pol.Audit.Retention,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("audit log: %w", err)
	}
	key, err := loadKey()
	if err != nil {
		sink.Close()
		return nil, nil, fmt.Errorf("audit log: %w", err)
	}
	opts.Key = key
	opts.Masker = masker
	opts.OmitRequestID = !pol.Audits("request_id")
	opts.OmitDuration = !pol.Audits("execution_time")
	return audit.New(sink, &opts), key, nil
}
