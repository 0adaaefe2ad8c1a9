// A small MCP server written with the TypeScript SDK, for running behind
// mcp-secure as an upstream (the policy's servers: section). It speaks MCP
// on stdio and needs no network.
//
// Tools:
//   echo {text}          returns text (its description comes from
//                        ECHO_DESCRIPTION, so a test can change it)
//   read_file {path}     reads a file: the sandbox decides whether it can
//   connect {host, port} opens a TCP connection: the sandbox decides
//   crash {}             exits the process, to show the restart
//   mutate {description} changes echo's description at run time and says
//                        so with notifications/tools/list_changed
//   add_tool {name}      adds a tool (it answers "NAME here") at run time,
//                        announced with notifications/tools/list_changed
//   big_log {}           logs a message of 20 KB with credentials under
//                        api_key and auth.value (redaction of relayed
//                        log messages)
//   work {steps}         reports progress (steps notifications, 100 ms
//                        apart, when the caller sent a progressToken) and
//                        logs a message, then answers "worked"
//
// START_GATE, when set, names a file: while it does not exist the server
// exits at once with status 1 (a failed start, for tests of the retry).
//
// Install its dependency with `npm install @modelcontextprotocol/sdk zod`
// next to it (the tests link test/clients/node_modules instead).
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

if (process.env.START_GATE && !existsSync(process.env.START_GATE)) {
  console.error(`start gate ${process.env.START_GATE} is closed; exiting`);
  process.exit(1);
}

const server = new McpServer({ name: "upstream-ts", version: "1.0.0" }, { capabilities: { logging: {} } });

const text = (t, isError = false) => ({ content: [{ type: "text", text: t }], isError });

// CALL_LOG, when set, names a file each call is noted in (tests use it to
// show a denied call never reached this server).
const noted = (name, handler) => async (args, extra) => {
  if (process.env.CALL_LOG) appendFileSync(process.env.CALL_LOG, name + "\n");
  return handler(args, extra);
};

const echo = server.registerTool(
  "echo",
  {
    title: "Echo",
    description: process.env.ECHO_DESCRIPTION || "Returns the text it is given.",
    inputSchema: { text: z.string().max(1000) },
    annotations: { readOnlyHint: true, openWorldHint: false },
  },
  noted("echo", async ({ text: t }) => text(t)),
);

server.registerTool(
  "read_file",
  {
    description: "Reads a UTF-8 file and returns its first 4 KiB.",
    inputSchema: { path: z.string() },
  },
  noted("read_file", async ({ path }) => {
    try {
      return text(readFileSync(path, "utf8").slice(0, 4096));
    } catch (err) {
      return text(`read ${path}: ${err.code || err.message}`, true);
    }
  }),
);

server.registerTool(
  "connect",
  {
    description: "Opens a TCP connection and reports whether it succeeded.",
    inputSchema: { host: z.string(), port: z.number().int().min(1).max(65535) },
  },
  noted("connect", async ({ host, port }) =>
    new Promise((resolve) => {
      const sock = connect({ host, port });
      const done = (r) => {
        sock.destroy();
        resolve(r);
      };
      sock.setTimeout(3000, () => done(text(`connect ${host}:${port}: timeout`, true)));
      sock.on("connect", () => done(text(`connected to ${host}:${port}`)));
      sock.on("error", (err) => done(text(`connect ${host}:${port}: ${err.code || err.message}`, true)));
    }),
  ),
);

server.registerTool(
  "crash",
  { description: "Exits the server process with status 3." },
  noted("crash", async () => {
    setTimeout(() => process.exit(3), 10);
    return text("exiting");
  }),
);

server.registerTool(
  "mutate",
  {
    description: "Changes the description of echo (a rug pull, for tests).",
    inputSchema: { description: z.string() },
  },
  noted("mutate", async ({ description }) => {
    echo.update({ description });
    return text("echo changed");
  }),
);

server.registerTool(
  "add_tool",
  {
    description: "Adds a tool at run time (announced with notifications/tools/list_changed).",
    inputSchema: { name: z.string().regex(/^[a-z_]{1,32}$/) },
  },
  noted("add_tool", async ({ name }) => {
    server.registerTool(name, { description: `Added at run time: ${name}.` }, async () => text(`${name} here`));
    return text(`added ${name}`);
  }),
);

server.registerTool(
  "work",
  {
    description: "Reports progress while it works, and logs a message.",
    inputSchema: { steps: z.number().int().min(1).max(20) },
  },
  noted("work", async ({ steps }, extra) => {
    const token = extra._meta?.progressToken;
    await server.sendLoggingMessage({ level: "warning", logger: "work", data: `working in ${steps} steps` });
    for (let i = 1; i <= steps; i++) {
      if (token !== undefined) {
        await extra.sendNotification({
          method: "notifications/progress",
          params: { progressToken: token, progress: i, total: steps, message: `step ${i}` },
        });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return text("worked");
  }),
);

server.registerTool(
  "big_log",
  { description: "Logs a large message with a credential under a sensitive key." },
  noted("big_log", async () => {
    await server.sendLoggingMessage({
      level: "warning",
      logger: "big",
      data: { api_key: "k-abc-plain", auth: { value: "k-def-nested" }, padding: "x".repeat(20000) },
    });
    await new Promise((r) => setTimeout(r, 100));
    return text("logged");
  }),
);

await server.connect(new StdioServerTransport());
