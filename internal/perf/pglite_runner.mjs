// pgxtask perf runner for PGlite in Node. Written by pgxtask into its cache
// next to the pinned @electric-sql/pglite package. Protocol: one JSON
// request per line on stdin, one JSON answer per line on stdout; every
// timing is measured here, around the PGlite call, in microseconds.
//
//   {"op":"exec","sql":"...","repeat":N}          -> {"micros":[...]}  (simple protocol, db.exec)
//   {"op":"query","sql":"...","repeat":N}         -> {"micros":[...]}  (extended protocol, db.query)
//   {"op":"tx","stmts":["..."],"repeat":N}        -> {"micros":[...]}  (db.transaction)
//   {"op":"info","settings":["name",...]}         -> {"settings":{...}}
//   any failure                                   -> {"error":"..."}
//
// On start it prints {"ready":true, ...} with the open and first-query
// timings and the versions, as soon as the first query answered. PGlite's own console output goes to stderr so
// that stdout carries only the protocol.
import { PGlite } from "@electric-sql/pglite";
import { createInterface } from "node:readline";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

console.log = console.error;
console.info = console.error;
console.warn = console.error;

const send = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const micros = (t0) => (performance.now() - t0) * 1000;

const pkg = JSON.parse(
  readFileSync(new URL("./node_modules/@electric-sql/pglite/package.json", import.meta.url), "utf8"),
);

let db;
try {
  const t0 = performance.now();
  const options = {};
  if (process.env.PGXTASK_PGLITE_DATADIR) options.dataDir = process.env.PGXTASK_PGLITE_DATADIR;
  const wanted = (process.env.PGXTASK_PGLITE_EXTENSIONS || "").split(",").filter(Boolean);
  if (wanted.length > 0) {
    options.extensions = {};
    for (const name of wanted) {
      const mod = await import("@electric-sql/pglite/contrib/" + name);
      options.extensions[name] = mod[name];
    }
  }
  db = new PGlite(options);
  await db.waitReady;
  const openMicros = micros(t0);
  const t1 = performance.now();
  await db.query("SELECT 1");
  const firstQueryMicros = micros(t1);
  send({
    ready: true,
    openMicros,
    firstQueryMicros,
    pgliteVersion: pkg.version,
    nodeVersion: process.version,
  });
} catch (e) {
  send({ error: "open PGlite: " + (e && e.stack ? e.stack : String(e)) });
  process.exit(1);
}

async function handle(req) {
  const out = [];
  const repeat = req.repeat || 1;
  switch (req.op) {
    case "exec":
      for (let i = 0; i < repeat; i++) {
        const t0 = performance.now();
        await db.exec(req.sql);
        out.push(micros(t0));
      }
      break;
    case "query":
      for (let i = 0; i < repeat; i++) {
        const t0 = performance.now();
        await db.query(req.sql);
        out.push(micros(t0));
      }
      break;
    case "tx":
      for (let i = 0; i < repeat; i++) {
        const t0 = performance.now();
        await db.transaction(async (tx) => {
          for (const s of req.stmts) await tx.query(s);
        });
        out.push(micros(t0));
      }
      break;
    case "info": {
      const settings = {};
      for (const name of req.settings) {
        const r = await db.query("SELECT current_setting($1) AS v", [name]);
        settings[name] = r.rows[0].v;
      }
      return { settings };
    }
    default:
      throw new Error("unknown op " + JSON.stringify(req.op));
  }
  return { micros: out };
}

let chain = Promise.resolve();
const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  chain = chain.then(async () => {
    try {
      send(await handle(JSON.parse(line)));
    } catch (e) {
      send({ error: e && e.message ? e.message : String(e) });
    }
  });
});
rl.on("close", () => {
  chain.then(async () => {
    await db.close();
    process.exit(0);
  });
});
