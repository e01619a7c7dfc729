// Opens a fhirsurge report.html in headless Chromium (the system's, never a downloaded
// one), takes a full-page screenshot, and checks that every chart rendered as an SVG
// of non-zero size with drawn shapes and that the page made no request besides the
// file itself. Prints one JSON object; exits 0 when all holds, 1 when not, 2 on bad use.
//
//   node tests/browser/check-report.mjs report.html screenshot.png

import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const [file, shot] = process.argv.slice(2);
if (!file || !shot) {
  console.error('usage: check-report.mjs <report.html> <screenshot.png>');
  process.exit(2);
}

const EXPECTED_CHARTS = ['throughput', 'errors', 'distribution', 'latency'];
const TIMEOUT_MS = 30_000;
const url = pathToFileURL(resolve(file)).href;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  timeout: TIMEOUT_MS,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});

const result = { url, requests: [], page_errors: [], svg_count: 0, charts: {}, problems: [] };
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // Anything but the file itself is recorded and refused: the page must not need it.
  await context.route('**/*', (route) => {
    const u = route.request().url();
    if (u === url) return route.continue();
    result.requests.push(u);
    return route.abort();
  });
  const page = await context.newPage();
  page.on('request', (r) => {
    const u = r.url();
    if (u !== url && !result.requests.includes(u)) result.requests.push(u);
  });
  page.on('pageerror', (e) => result.page_errors.push(String(e)));
  await page.goto(url, { waitUntil: 'load', timeout: TIMEOUT_MS });

  const svgs = await page.$$eval('svg', (els) =>
    els.map((e) => {
      const box = e.getBoundingClientRect();
      return {
        chart: e.getAttribute('data-chart') || '',
        width: Math.round(box.width),
        height: Math.round(box.height),
        shapes: e.querySelectorAll('path, rect, line, polyline, circle').length,
        texts: e.querySelectorAll('text').length,
      };
    }),
  );
  result.svg_count = svgs.length;
  for (const s of svgs) {
    const c = (result.charts[s.chart] ||= { count: 0, min_width: Infinity, min_height: Infinity, min_shapes: Infinity });
    c.count += 1;
    c.min_width = Math.min(c.min_width, s.width);
    c.min_height = Math.min(c.min_height, s.height);
    c.min_shapes = Math.min(c.min_shapes, s.shapes);
    if (s.width <= 0 || s.height <= 0) result.problems.push(`${s.chart || 'svg'}: zero size`);
    if (s.shapes === 0) result.problems.push(`${s.chart || 'svg'}: nothing drawn`);
    if (s.texts === 0) result.problems.push(`${s.chart || 'svg'}: no labels`);
  }
  for (const name of EXPECTED_CHARTS) {
    if (!result.charts[name]) result.problems.push(`chart ${name} missing`);
  }
  result.title = await page.title();
  result.scripts = await page.$$eval('script', (els) => els.length);
  if (result.scripts > 0) result.problems.push(`${result.scripts} script elements`);
  await page.screenshot({ path: shot, fullPage: true, timeout: TIMEOUT_MS });
  result.screenshot = shot;
} catch (e) {
  result.problems.push(`browser: ${e && e.message ? e.message : e}`);
} finally {
  await browser.close();
}

if (result.requests.length > 0) result.problems.push(`${result.requests.length} network requests`);
if (result.page_errors.length > 0) result.problems.push('page errors');
result.ok = result.problems.length === 0;
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
