import assert from "node:assert/strict";
import {
  Counter,
  EXPOSITION_CONTENT_TYPE,
  Gauge,
  Histogram,
  MAX_SERIES,
  MetricRegistry,
} from "../../src/metrics/metric_registry.ts";

Deno.test("MetricRegistry.metrics() writes the Prometheus text format 0.0.4 as prom-client did", async () => {
  const registry = new MetricRegistry();
  const counter = registry.register(
    new Counter({ name: "x_total", help: "Help with \\ and\nnewline", labelNames: ["route"] }),
  );
  counter.inc({ route: "/v1/a" });
  counter.inc({ route: "/v1/a" }, 2);
  counter.inc({ route: 'odd"\\\n' }, 0.5);
  registry.register(new Counter({ name: "zero_total", help: "Z" }));
  registry.register(new Gauge({ name: "g", help: "G", labelNames: ["q"] })).set({ q: "a" }, -1.5);
  const histogram = registry.register(
    new Histogram({ name: "h_seconds", help: "H", labelNames: ["l"], buckets: [0.1, 1] }),
  );
  histogram.observe({ l: "ssh" }, 0.05);
  histogram.observe({ l: "ssh" }, 5);
  assert.equal(
    await registry.metrics(),
    [
      "# HELP x_total Help with \\\\ and\\nnewline",
      "# TYPE x_total counter",
      'x_total{route="/v1/a"} 3',
      'x_total{route="odd\\"\\\\\\n"} 0.5',
      "",
      "# HELP zero_total Z",
      "# TYPE zero_total counter",
      "zero_total 0",
      "",
      "# HELP g G",
      "# TYPE g gauge",
      'g{q="a"} -1.5',
      "",
      "# HELP h_seconds H",
      "# TYPE h_seconds histogram",
      'h_seconds_bucket{le="0.1",l="ssh"} 1',
      'h_seconds_bucket{le="1",l="ssh"} 1',
      'h_seconds_bucket{le="+Inf",l="ssh"} 2',
      'h_seconds_sum{l="ssh"} 5.05',
      'h_seconds_count{l="ssh"} 2',
      "",
    ].join("\n"),
  );
  assert.match(EXPOSITION_CONTENT_TYPE, /^text\/plain; version=0\.0\.4/);
});

Deno.test("Counter.inc() refuses a negative or non-finite amount and an unknown label", () => {
  const counter = new Counter({ name: "c_total", help: "C", labelNames: ["a"] });
  assert.throws(() => counter.inc({ a: "x" }, -1), RangeError);
  assert.throws(() => counter.inc(NaN), RangeError);
  assert.throws(() => counter.inc({ b: "x" } as never), TypeError);
});

Deno.test("Histogram.get() answers cumulative buckets, sum and count by sample name", async () => {
  const histogram = new Histogram({ name: "h", help: "H", buckets: [1, 2] });
  histogram.observe(0.5);
  histogram.observe(1.5);
  histogram.observe(3);
  const values = (await histogram.get()).values.map((v) => [v.metricName, v.labels.le, v.value]);
  assert.deepEqual(values, [
    ["h_bucket", 1, 1],
    ["h_bucket", 2, 2],
    ["h_bucket", "+Inf", 3],
    ["h_sum", undefined, 5],
    ["h_count", undefined, 3],
  ]);
  histogram.reset();
  assert.deepEqual((await histogram.get()).values, []);
});

Deno.test("a metric keeps at most MAX_SERIES label sets and drops samples of further ones", async () => {
  const counter = new Counter({ name: "many_total", help: "M", labelNames: ["n"] });
  for (let n = 0; n <= MAX_SERIES; n++) counter.inc({ n });
  const values = (await counter.get()).values;
  assert.equal(values.length, MAX_SERIES);
  assert.equal(values.some((v) => v.labels.n === MAX_SERIES), false);
  counter.inc({ n: 0 });
  assert.equal((await counter.get()).values[0]?.value, 2, "known series still count");
});

Deno.test("MetricRegistry.register() refuses a second metric of the same name", () => {
  const registry = new MetricRegistry();
  registry.register(new Gauge({ name: "same", help: "S" }));
  assert.throws(() => registry.register(new Gauge({ name: "same", help: "S" })), TypeError);
  assert.throws(() => new Gauge({ name: "bad-name", help: "B" }), TypeError);
  assert.throws(() => new Histogram({ name: "h", help: "H", buckets: [2, 1] }), TypeError);
});

Deno.test("MetricRegistry.metrics() runs one scrape at a time, so collects never interleave", async () => {
  const registry = new MetricRegistry();
  let running = 0;
  let most = 0;
  const gauge: Gauge = registry.register(
    new Gauge({
      name: "slow",
      help: "S",
      labelNames: ["k"],
      async collect() {
        most = Math.max(most, ++running);
        gauge.reset();
        await new Promise((resolve) => setTimeout(resolve, 5));
        gauge.set({ k: "a" }, 1);
        running--;
      },
    }),
  );
  const texts = await Promise.all([registry.metrics(), registry.metrics(), registry.metrics()]);
  assert.equal(most, 1);
  for (const text of texts) assert.match(text, /slow\{k="a"\} 1/);
});
