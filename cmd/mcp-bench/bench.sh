#!/usr/bin/env bash
# bench.sh runs the Go micro-benchmarks and the mcp-bench scenarios and
# writes a markdown report (default bin/bench-report.md).
#
# Environment:
#   GO                 the go command (default go)
#   BENCH_COUNT        -count of the Go benchmarks (default 5, for benchstat)
#   BENCH_TIME         -benchtime of the Go benchmarks (default 300ms)
#   BENCH_RUNS         mcp-bench --runs per scenario (default 5)
#   BENCH_GO=0         skip the Go micro-benchmarks
#   BENCH_EXTERNAL=0   skip the external-plugin call benchmark (the real
#                      binary with a trivial Go plugin, about 30 s)
#   BENCH_SOAK         calls of the soak scenario, 32 in flight, whose RSS
#                      growth after warmup is reported (default 1000000,
#                      about 40 s; 0 skips it)
#   BENCH_PKGS         packages with Go benchmarks
#   MCP_BENCH_PEER     another stdio MCP server command; each scenario is
#                      also run against it (word-split by the shell)
#   BENCH_REPORT       where to write the report
set -euo pipefail

GO=${GO:-go}
COUNT=${BENCH_COUNT:-5}
BENCHTIME=${BENCH_TIME:-300ms}
RUNS=${BENCH_RUNS:-5}
PKGS=${BENCH_PKGS:-./server/engine/ ./server/guard/ ./server/ ./server/audit/ ./server/sandbox/ ./plugins/bugtracker/}
OUT=${BENCH_REPORT:-bin/bench-report.md}
DIR=bin/bench
mkdir -p "$DIR"

CGO_ENABLED=0 "$GO" build -ldflags "-X main.version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)" -o bin/mcp-secure ./cmd/mcp-secure
CGO_ENABLED=0 "$GO" build -o bin/mcp-secure-launch ./cmd/mcp-secure-launch
"$GO" build -o bin/mcp-bench ./cmd/mcp-bench
"$GO" build -o bin/canned ./cmd/mcp-bench/internal/canned
# canned linking the libraries mcp-secure is built on: the floor of a
# start made of them.
"$GO" build -tags libfloor -o bin/canned-libs ./cmd/mcp-bench/internal/canned
"$GO" build -o bin/relay ./cmd/mcp-bench/internal/relay
"$GO" build -o bin/many ./cmd/mcp-bench/internal/many

# The default policy with every per-minute rate limit raised out of the
# way, so that repeated calls measure the call and not the rate limiter.
POLICY=$DIR/policy.yaml
sed '/^  rate_limits:/,/^  [a-z]/ s/^\(    [a-z_]*\): [0-9][0-9]*$/\1: 1000000000/' server/policy/default.yaml >"$POLICY"
bin/mcp-secure policy check --policy "$POLICY" >/dev/null
OURS=(bin/mcp-secure serve --policy "$POLICY")
# The same policy with the canned server as an upstream ("servers:"), its
# tools offered as c__<tool>: the overhead of an upstream call, against
# calling canned directly and against the byte relay (any proxy's hop).
UPOLICY=$DIR/policy-upstream.yaml
{
	grep -v '^servers:' "$POLICY"
	printf 'servers:\n  c:\n    command: %s\n' "$PWD/bin/canned"
} >"$UPOLICY"
bin/mcp-secure policy check --policy "$UPOLICY" >/dev/null
# The same with an upstream of 100 tools (bin/many), every one pinned at
# its first start: the start-up cost of a large listing.
MPOLICY=$DIR/policy-upstream-100.yaml
{
	grep -v '^servers:' "$POLICY"
	printf 'servers:\n  m:\n    command: %s\n    args: ["100"]\n' "$PWD/bin/many"
} >"$MPOLICY"
bin/mcp-secure policy check --policy "$MPOLICY" >/dev/null
FLOOR=(bin/canned)
read -r -a PEER <<<"${MCP_BENCH_PEER:-}"

# name | title | mcp-bench workload flags
SCENARIOS=(
	"ping|ping, lockstep|--method ping --calls 2000"
	"tools-list|tools/list, lockstep|--method tools/list --calls 1000"
	"list-categories|tools/call list_categories, lockstep|--tool list_categories --calls 1000"
	"denied|tools/call of an unknown tool (denied), lockstep|--tool no_such_tool --calls 1000"
	"stateless|tools/call list_categories, lockstep, stateless protocol 2026-07-28|--tool list_categories --calls 1000 --protocol 2026-07-28"
	"pipelined|3,000 tools/call list_categories, 32 in flight|--tool list_categories --calls 3000 --concurrency 32"
	"cold-start|spawn → first tool answer (list_categories)|--tool list_categories --calls 1 --warmup 0 --runs 11"
)

machine() {
	local cpu
	cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
	echo "| | |"
	echo "|---|---|"
	echo "| CPU | ${cpu:-unknown} |"
	echo "| cores | $(nproc 2>/dev/null || echo '?') |"
	echo "| load average at start | $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?') |"
	echo "| Go | $("$GO" version | cut -d' ' -f3-) |"
	echo "| kernel | $(uname -sr) |"
	echo "| commit | $(git describe --always --dirty 2>/dev/null || echo unknown) |"
	echo "| date | $(date -u +%Y-%m-%dT%H:%M:%SZ) |"
}

SUMMARY=$DIR/summary.md
PEER_SUMMARY=$DIR/summary-peer.md
SECTIONS=$DIR/sections.md
rm -f "$SUMMARY" "$PEER_SUMMARY" "$SECTIONS"

scenario() { # summary-file title flags... -- server... [--compare -- other...]
	local summary=$1 title=$2
	shift 2
	echo "mcp-bench: $title" >&2
	{
		echo '```'
		echo "bin/mcp-bench $*"
		echo '```'
		echo
		bin/mcp-bench --quiet --markdown --title "$title" --summary "$summary" "$@" || echo "_mcp-bench failed (exit $?)_"
	} >>"$SECTIONS"
}

# gomedians turns `go test -bench` output into one markdown row per
# benchmark: the median ns/op over -count runs, B/op and allocs/op.
gomedians() {
	echo "| benchmark | runs | median ns/op | B/op | allocs/op |"
	echo "|---|---:|---:|---:|---:|"
	awk '/^Benchmark/ && $4 == "ns/op" { print $1, $3, $5, $7 }' "$1" |
		sort -k1,1 -k2,2n |
		awk '{ n[$1]++; v[$1, n[$1]] = $2; b[$1] = $3; a[$1] = $4; if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
			END { for (i = 1; i <= k; i++) { m = order[i]; c = n[m]
				med = (c % 2) ? v[m, (c + 1) / 2] : (v[m, c / 2] + v[m, c / 2 + 1]) / 2
				printf "| %s | %d | %.0f | %s | %s |\n", m, c, med, b[m], a[m] } }'
}

{
	echo "# mcp-secure benchmark report"
	echo
	echo "Generated by \`make bench\`. The machine may be shared: compare figures measured in the same run (the A/B ratios), not across reports."
	echo
	echo "## Machine"
	echo
	machine
	echo
	echo "## mcp-bench scenarios"
	echo
	echo "A is \`${OURS[*]}\` (the default policy with its per-minute rate limits raised to 10⁹, audit log on, fresh HOME per run); B is the canned-bytes floor (\`${FLOOR[*]}\`, a Go program that answers every request with fixed bytes) unless the heading names a peer. Default protocol 2025-11-25."
	echo
	for s in "${SCENARIOS[@]}"; do
		IFS='|' read -r name title flags <<<"$s"
		read -r -a f <<<"$flags"
		runs=(--runs "$RUNS")
		[[ $flags == *--runs* ]] && runs=()
		scenario "$SUMMARY" "$title" "${runs[@]}" "${f[@]}" -- "${OURS[@]}" --compare -- "${FLOOR[@]}"
		if ((${#PEER[@]})); then
			scenario "$PEER_SUMMARY" "$title, against the peer" "${runs[@]}" "${f[@]}" -- "${OURS[@]}" --compare -- "${PEER[@]}"
		fi
	done
	up=(--runs "$RUNS" --tool c__echo --args '{"text":"hi"}' --calls 1000)
	scenario "$SUMMARY" "upstream tools/call, lockstep: through mcp-secure (A) against the upstream called directly (B)" \
		"${up[@]}" -- bin/mcp-secure serve --policy "$UPOLICY" --compare -- bin/canned
	scenario "$SUMMARY" "upstream tools/call, lockstep: through the byte relay (A, the hop any proxy adds) against the upstream called directly (B)" \
		"${up[@]}" -- bin/relay bin/canned --compare -- bin/canned
	scenario "$SUMMARY" "spawn → first tool answer (list_categories): mcp-secure (A) against canned linking mcp-secure's libraries (B, -tags libfloor)" \
		--tool list_categories --calls 1 --warmup 0 --runs 11 -- "${OURS[@]}" --compare -- bin/canned-libs
	scenario "$SUMMARY" "spawn → first tool answer: canned linking mcp-secure's libraries (A) against the bare canned floor (B)" \
		--tool list_categories --calls 1 --warmup 0 --runs 11 -- bin/canned-libs --compare -- bin/canned
	scenario "$SUMMARY" "spawn → first answer (list_categories) with an upstream of 100 tools, each pinned at this first start (A), against the policy without upstreams (B)" \
		--runs "$RUNS" --tool list_categories --calls 1 --warmup 0 -- bin/mcp-secure serve --policy "$MPOLICY" --compare -- "${OURS[@]}"
	if [[ ${BENCH_SOAK:-1000000} != 0 ]]; then
		scenario "$SUMMARY" "soak: ${BENCH_SOAK:-1000000} tools/call list_categories, 32 in flight, one server (RSS growth after a 20,000-call warmup)" \
			--runs 1 --tool list_categories --calls "${BENCH_SOAK:-1000000}" --concurrency 32 --warmup 20000 --timeout 10m -- "${OURS[@]}"
	fi
	echo "### Summary: mcp-secure (A) against the canned floor (B)"
	echo
	cat "$SUMMARY" 2>/dev/null || echo "_no scenario completed_"
	echo
	if ((${#PEER[@]})); then
		echo "### Summary: mcp-secure (A) against the peer (B: \`${PEER[*]}\`)"
		echo
		cat "$PEER_SUMMARY" 2>/dev/null || echo "_no scenario completed_"
		echo
	fi
	cat "$SECTIONS"
	if [[ ${BENCH_EXTERNAL:-1} != 0 ]]; then
		echo "## External plugin calls"
		echo
		echo "\`go test ./cmd/mcp-secure -run '^\$' -bench 'BenchmarkExternalCall/(paired|direct)' -benchtime 100x\`: the real binary with a trivial Go plugin (testdata/extfixture), per call and persistent, each iteration also calling the built-in list_categories. *added* is the external call less the built-in one; *spaced* runs each call on an idle server (50 ms apart) and the plugin directly beside it, idle too, and *over-direct* is what the server adds to that direct run. Back to back, each call's launcher is refilled while the next call runs. Raw output in $DIR/external-bench.txt."
		echo
		echo "mcp-bench: external plugin calls" >&2
		if "$GO" test ./cmd/mcp-secure -run '^$' -bench 'BenchmarkExternalCall/(paired|direct)' -benchtime 100x >"$DIR/external-bench.txt" 2>&1; then
			echo "| benchmark | metrics |"
			echo "|---|---|"
			awk '/^Benchmark/ { m = ""; for (i = 3; i < NF; i += 2) m = m (m == "" ? "" : ", ") $i " " $(i+1); printf "| %s | %s |\n", $1, m }' "$DIR/external-bench.txt"
		else
			echo "Status: failed (exit $?)."
		fi
		echo
	fi
	if [[ ${BENCH_GO:-1} != 0 ]]; then
		echo "## Go micro-benchmarks"
		echo
		echo "\`go test -run '^\$' -bench . -benchmem -count $COUNT -benchtime $BENCHTIME $PKGS\` (raw output in $DIR/go-bench.txt, for benchstat)."
		echo
		echo "mcp-bench: Go micro-benchmarks" >&2
		# shellcheck disable=SC2086
		if "$GO" test -run '^$' -bench . -benchmem -count "$COUNT" -benchtime "$BENCHTIME" $PKGS >"$DIR/go-bench.txt" 2>&1; then
			status=ok
		else
			status="failed (exit $?)"
		fi
		echo "Status: $status."
		echo
		gomedians "$DIR/go-bench.txt"
		echo
		echo "Packages:"
		echo
		echo '```'
		grep -E '^(ok|FAIL|---)' "$DIR/go-bench.txt" || true
		echo '```'
	fi
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "wrote $OUT" >&2
