// Command mcp-bench is a load generator for any MCP server that speaks
// newline-delimited JSON-RPC over stdio.
//
//	mcp-bench [flags] -- SERVER_CMD ARGS... [--compare -- OTHER_CMD ARGS...]
//
// It spawns the server (with a fresh temporary HOME and XDG directories
// unless --keep-env), performs the handshake (initialize, or server/discover
// with per-request _meta for the stateless 2026-07-28 protocol), then sends
// one workload: a method (--method) or a tool call (--tool, --args), --calls
// times or for --duration, whichever ends first, with --concurrency requests
// in flight on the one connection (1 is lockstep: write, wait, repeat).
//
// It reports spawn to the handshake answer and to the first workload
// answer, latency percentiles, throughput, errors by kind, and the server's
// peak RSS and CPU time. --runs repeats the whole run with a fresh server
// and reports medians; --compare runs the same workload against a second
// server, interleaving the runs, and prints the ratios. --json writes the
// figures for machines, --markdown a report section, and --summary FILE
// appends one markdown table row per invocation.
//
// Server CPU per call comes from /proc/PID/stat, in 10 ms ticks: read it
// only over runs of a second or more. Peak RSS is VmHWM, or the rusage
// maximum when larger.
//
// All traffic stays on the server's stdin and stdout; mcp-bench opens no
// socket.
package main
