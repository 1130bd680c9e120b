// The benchmark matrix as one SVG picture: throughput and p99 latency of every row, side by side,
// drawn by Apache ECharts' server-side renderer (no DOM, no canvas, no native add-on).
//
// Both axes are logarithmic: the echo ceiling runs about ten times faster than the Raft rows,
// and on a linear axis those rows would be squeezed into stubs too short to compare. Each bar
// carries its value as a label, so the log scale never has to be read off the grid.
import * as echarts from 'echarts/core';
import { BarChart } from 'echarts/charts';
import { GridComponent, LegendComponent, TitleComponent } from 'echarts/components';
import { SVGRenderer } from 'echarts/renderers';

echarts.use([BarChart, GridComponent, LegendComponent, TitleComponent, SVGRenderer]);

/** One bar pair: a row of the matrix; absent figures (a failed row) draw no bar. */
export interface ChartRow {
  label: string;
  /** Picks the colour: "flotilla", "redis", "etcd"; anything else is grey. */
  system: string;
  opsPerSec?: number;
  p99Ms?: number;
  failed: boolean;
}

export interface ChartOptions {
  title: string;
  subtitle?: string;
  widthPx?: number;
}

/** Colour of each system's bars; the legend lists only the systems present. */
export const SYSTEM_COLOURS: Readonly<Record<string, string>> = {
  flotilla: '#3b6fb6',
  redis: '#c8443a',
  etcd: '#3d9a57',
};
const OTHER_COLOUR = '#888888';

const WIDTH_PX_DEFAULT = 1200;
const ROW_HEIGHT_PX = 26;
/** Room above the bars (title, subtitle, legend, panel titles) and below (axis labels). */
const TOP_PX = 110;
const BOTTOM_PX = 40;
/** The y-axis labels ("flotilla 3n nosync 1024g (failed)") sit in this margin, left of the first panel. */
const LABEL_PX = 230;

/** Compact figure for a bar label: 1234567 → "1.23M", 45120 → "45.1k", 812 → "812". */
export function compactNumber(n: number): string {
  const abs = Math.abs(n);
  const three = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  if (abs >= 1e6) return `${three(n / 1e6)}M`;
  if (abs >= 1e3) return `${three(n / 1e3)}k`;
  return three(n);
}

/** Tick of a log axis, a power of ten: 10000 → "10k", 1e6 → "1M", 0.1 → "0.1". */
export function tickNumber(n: number): string {
  const trim = (x: number): string => String(Number(x.toPrecision(3)));
  if (n >= 1e6) return `${trim(n / 1e6)}M`;
  if (n >= 1e3) return `${trim(n / 1e3)}k`;
  return trim(n);
}

/** Powers of ten around the positive values, with room to the right for the bar labels. */
export function logBounds(values: readonly number[]): { min: number; max: number } {
  const positive = values.filter((v) => Number.isFinite(v) && v > 0);
  if (positive.length === 0) return { min: 1, max: 10 };
  const lo = Math.min(...positive);
  const hi = Math.max(...positive);
  // The longest bar ends about three quarters of a decade short of the edge, leaving room for its label.
  return { min: 10 ** Math.floor(Math.log10(lo)), max: hi * 5 };
}

/** Renders the two panels (ops/s, p99 ms) for these rows, top to bottom in the given order. */
export function renderMatrixSvg(rows: readonly ChartRow[], o: ChartOptions): string {
  const widthPx = o.widthPx ?? WIDTH_PX_DEFAULT;
  const heightPx = TOP_PX + BOTTOM_PX + Math.max(1, rows.length) * ROW_HEIGHT_PX;
  const labels = rows.map((r) => (r.failed ? `${r.label} (failed)` : r.label));
  const systems = [...new Set(rows.map((r) => r.system))];
  const panelPx = (widthPx - LABEL_PX - 60) / 2;
  const ops = logBounds(rows.map((r) => r.opsPerSec ?? 0));
  const p99 = logBounds(rows.map((r) => r.p99Ms ?? 0));

  // One series per system and panel, holding only that system's rows (the rest '-'), drawn
  // over each other (barGap -100%) so that each row has one bar, coloured by its system, and
  // the legend names the systems.
  const value = (v: number | undefined): number | '-' => (v !== undefined && v > 0 ? v : '-');
  const series = systems.flatMap((system) => {
    const colour = SYSTEM_COLOURS[system] ?? OTHER_COLOUR;
    const mine = (pick: (r: ChartRow) => number | undefined): (number | '-')[] =>
      rows.map((r) => (r.system === system ? value(pick(r)) : '-'));
    return [
      {
        type: 'bar' as const, name: system, xAxisIndex: 0, yAxisIndex: 0, barGap: '-100%', barWidth: '62%',
        itemStyle: { color: colour }, data: mine((r) => r.opsPerSec),
        label: { show: true, position: 'right' as const, fontSize: 11, color: '#333', formatter: (p: { value: unknown }) => compactNumber(Number(p.value)) },
      },
      {
        type: 'bar' as const, name: system, xAxisIndex: 1, yAxisIndex: 1, barGap: '-100%', barWidth: '62%',
        itemStyle: { color: colour }, data: mine((r) => r.p99Ms),
        label: { show: true, position: 'right' as const, fontSize: 11, color: '#333', formatter: (p: { value: unknown }) => `${compactNumber(Number(p.value))} ms` },
      },
    ];
  });

  const category = (index: number, showLabels: boolean) => ({
    type: 'category' as const, gridIndex: index, data: labels, inverse: true,
    axisTick: { show: false },
    axisLabel: { show: showLabels, fontSize: 12, color: '#222' },
  });
  const logAxis = (index: number, name: string, bounds: { min: number; max: number }) => ({
    type: 'log' as const, gridIndex: index, logBase: 10, min: bounds.min, max: bounds.max,
    name, nameLocation: 'middle' as const, nameGap: 24, nameTextStyle: { fontSize: 12, color: '#444' },
    axisLabel: { fontSize: 11, color: '#555', showMaxLabel: false, formatter: (v: number) => tickNumber(v) },
    splitLine: { lineStyle: { color: '#e4e4e4' } },
  });

  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width: widthPx, height: heightPx });
  try {
    chart.setOption({
      animation: false,
      backgroundColor: '#ffffff',
      textStyle: { fontFamily: 'Helvetica, Arial, sans-serif' },
      title: [
        { text: o.title, subtext: o.subtitle ?? '', left: 12, top: 8, textStyle: { fontSize: 16 }, subtextStyle: { fontSize: 12, color: '#555' } },
        { text: 'throughput (ops/s, log scale)', left: LABEL_PX, top: TOP_PX - 28, textStyle: { fontSize: 13, fontWeight: 'normal' } },
        { text: 'p99 latency (ms, log scale)', left: LABEL_PX + panelPx + 60, top: TOP_PX - 28, textStyle: { fontSize: 13, fontWeight: 'normal' } },
      ],
      legend: { data: systems, right: 16, top: 12, itemWidth: 14, itemHeight: 10, itemGap: 20, textStyle: { fontSize: 12 } },
      grid: [
        { left: LABEL_PX, top: TOP_PX, width: panelPx, bottom: BOTTOM_PX },
        { left: LABEL_PX + panelPx + 60, top: TOP_PX, width: panelPx, bottom: BOTTOM_PX },
      ],
      yAxis: [category(0, true), category(1, false)],
      xAxis: [logAxis(0, 'ops/s', ops), logAxis(1, 'ms', p99)],
      series,
    });
    return chart.renderToSVGString();
  } finally {
    chart.dispose();
  }
}
