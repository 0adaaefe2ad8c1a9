// An external plugin for mcp-secure in Node.js: formats JSON.
// It reads one request on stdin and writes one answer on stdout.
"use strict";

function answer(text, isError) {
  process.stdout.write(JSON.stringify({ content: [{ type: "text", text }], isError }) + "\n");
}

function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === "object") {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys(v[k]);
    return out;
  }
  return v;
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  let req;
  try {
    req = JSON.parse(input);
  } catch (e) {
    answer("bad request: " + e.message, true);
    return;
  }
  if (req.tool !== "format_json") {
    answer("unknown tool " + req.tool, true);
    return;
  }
  const args = req.arguments || {};
  let value;
  try {
    value = JSON.parse(args.json);
  } catch (e) {
    answer("not JSON: " + e.message, true);
    return;
  }
  if (args.sort_keys) value = sortKeys(value);
  const indent = args.indent === undefined ? 2 : args.indent;
  answer(JSON.stringify(value, null, indent), false);
});
