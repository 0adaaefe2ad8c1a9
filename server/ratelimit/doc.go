// Package ratelimit keeps one token bucket per tool.
//
// A tool's rate is in requests per minute (tools.rate_limits in the policy,
// with "default" as the fallback). The bucket holds up to one minute's
// worth of tokens and refills continuously. A rate of zero disables the
// tool. Buckets are created on first use; the server passes only
// registered tool names, so a client cannot make it allocate state.
package ratelimit
