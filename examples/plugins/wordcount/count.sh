#!/bin/sh
# An external plugin for mcp-secure in POSIX shell: counts the words of a
# text. Only the sandbox's executables may run (this script and /bin/sh),
# so it uses shell built-ins only.
#
# The request is one line: {"tool":"count_words","arguments":{"text":"..."}}
# (the schema allows no other argument). Escapes are treated as spaces.
set -f
IFS= read -r req || [ -n "$req" ] || {
	echo "no request" >&2
	exit 1
}
text=${req#*\"text\":\"}
text=${text%\"\}\}}
for esc in '\n' '\t' '\r' '\"' '\\'; do
	while :; do
		case $text in
		*"$esc"*) text="${text%%"$esc"*} ${text#*"$esc"}" ;;
		*) break ;;
		esac
	done
done
IFS=' 	'
set -- $text
printf '{"content":[{"type":"text","text":"%d words"}],"isError":false}\n' "$#"
