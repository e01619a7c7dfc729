#!/usr/bin/env node
// Rough throughput check against a running server.mjs (loopback only, bounded).
// usage: node bench.mjs BASE_URL [--n 2000] [--c 16] [--mode create|conditional|update]
//   create:      N plain POST Patient
//   conditional: N POST Patient with If-None-Exist on a unique identifier (each is a search + create)
//   update:      N/2 creates then N/2 PUT with If-Match (read-modify-write chains, one per worker)
// Afterwards it checks every resource it wrote can be found again by identifier.
import http from 'node:http';

const args = process.argv.slice(2);
const base = args[0];
if (!base || !/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+\//.test(base)) {
  console.error('usage: node bench.mjs http://127.0.0.1:PORT/fhir/R4/ [--n N] [--c C] [--mode M]');
  process.exit(2);
}
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const N = Math.min(Number(opt('n', 2000)), 100000);
const C = Math.min(Number(opt('c', 16)), 256);
const MODE = opt('mode', 'create');
const DEADLINE = Date.now() + 300_000; // never run longer than 5 minutes
const run = `${process.pid}-${Date.now()}`;
const SYS = `urn:fhirsurge:bench:${run}`;
const H = { 'Content-Type': 'application/fhir+json', Accept: 'application/fhir+json' };
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** Minimal fetch-alike over node:http with keep-alive (lighter on the CPU than global fetch). */
function fetch(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent, timeout: 60_000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode,
          headers: { get: (k) => res.headers[k.toLowerCase()] },
          json: async () => JSON.parse(text),
          arrayBuffer: async () => text,
        });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

const lat = [];
let errors = 0;
const statuses = {};
const created = []; // ids

async function timed(fn) {
  const t = performance.now();
  const res = await fn();
  lat.push(performance.now() - t);
  statuses[res.status] = (statuses[res.status] ?? 0) + 1;
  return res;
}

function patient(i) {
  return { resourceType: 'Patient', identifier: [{ system: SYS, value: `p${i}` }], name: [{ family: `Bench${i}` }] };
}

async function worker(w, jobs) {
  for (let j = w; j < jobs; j += C) {
    if (Date.now() > DEADLINE) {
      errors++;
      return;
    }
    try {
      if (MODE === 'update') {
        const res = await timed(() =>
          fetch(`${base}Patient`, { method: 'POST', headers: H, body: JSON.stringify(patient(j)) })
        );
        const body = await res.json();
        if (res.status !== 201) {
          errors++;
          continue;
        }
        created.push(body.id);
        const upd = { ...body, active: true };
        const r2 = await timed(() =>
          fetch(`${base}Patient/${body.id}`, {
            method: 'PUT',
            headers: { ...H, 'If-Match': res.headers.get('etag') },
            body: JSON.stringify(upd),
          })
        );
        await r2.arrayBuffer();
        if (r2.status !== 200) {
          errors++;
        }
      } else {
        const headers = MODE === 'conditional' ? { ...H, 'If-None-Exist': `identifier=${SYS}|p${j}` } : H;
        const res = await timed(() =>
          fetch(`${base}Patient`, { method: 'POST', headers, body: JSON.stringify(patient(j)) })
        );
        const body = await res.json();
        if (res.status !== 201) {
          errors++;
          continue;
        }
        created.push(body.id);
      }
    } catch (err) {
      errors++;
      if (errors < 5) {
        console.error(String(err));
      }
    }
  }
}

const jobs = MODE === 'update' ? Math.ceil(N / 2) : N;
const t0 = performance.now();
await Promise.all(Array.from({ length: C }, (_, w) => worker(w, jobs)));
const secs = (performance.now() - t0) / 1000;

// Every write found again: page through identifier=SYS| with _count=1000 and compare ids.
const seen = new Set();
let url = `${base}Patient?identifier=${encodeURIComponent(SYS + '|')}&_count=1000`;
for (let page = 0; url && page < 200; page++) {
  const b = await (await fetch(url, { headers: H })).json();
  for (const e of b.entry ?? []) {
    seen.add(e.resource.id);
  }
  url = (b.link ?? []).find((l) => l.relation === 'next')?.url;
}
const missing = created.filter((id) => !seen.has(id)).length;

lat.sort((a, b) => a - b);
const pct = (p) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]?.toFixed(1);
console.log(
  JSON.stringify({
    mode: MODE,
    requests: lat.length,
    concurrency: C,
    seconds: Number(secs.toFixed(2)),
    req_per_sec: Math.round(lat.length / secs),
    p50_ms: Number(pct(50)),
    p99_ms: Number(pct(99)),
    statuses,
    errors,
    written: created.length,
    found_again: created.length - missing,
  })
);
process.exit(errors || missing ? 1 : 0);
