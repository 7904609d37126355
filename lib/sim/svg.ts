/**
 * Line plots as standalone SVG text, written by hand (no dependency): one or
 * more panels stacked vertically that share the x axis.
 */

/** One line of a panel. */
export interface Line {
  name: string
  /** y per x = index (round). NaN leaves a gap. */
  values: readonly number[]
  color: string
  /** SVG stroke-dasharray, e.g. '6 3'. */
  dash?: string
}

/** One panel: a y axis and its lines. */
export interface Panel {
  ylabel: string
  lines: readonly Line[]
}

/** A figure. */
export interface Plot {
  title: string
  xlabel: string
  panels: readonly Panel[]
  width?: number
  panelHeight?: number
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** Round numbers for axis ticks covering [0, max]. */
function ticks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0]
  const raw = max / count
  const mag = Math.pow(10, Math.floor(Math.log10(raw)))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag
  // Enough ticks that the last one is at or above max.
  const n = Math.ceil(max / step - 1e-9)
  const out: number[] = []
  for (let i = 0; i <= n; i++) out.push(Number((i * step).toPrecision(12)))
  return out
}

function label(v: number): string {
  return Math.abs(v) >= 1000 ? `${Math.round(v / 100) / 10}k` : String(Number(v.toPrecision(4)))
}

/** The figure as SVG text. */
export function plot(p: Plot): string {
  const width = p.width ?? 760
  const ph = p.panelHeight ?? 260
  const left = 64
  const right = 190
  const top = 36
  const gap = 46
  const height = top + p.panels.length * (ph + gap) + 10
  const w = width - left - right
  const xmax = Math.max(1, ...p.panels.flatMap((panel) => panel.lines.map((l) => l.values.length - 1)))
  const xt = ticks(xmax, 8)
  const out: string[] = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(p.title)}</text>`,
  )
  p.panels.forEach((panel, pi) => {
    const y0 = top + pi * (ph + gap)
    const finite = panel.lines.flatMap((l) => l.values.filter((v) => Number.isFinite(v)))
    const yt = ticks(Math.max(1e-9, ...finite, 0))
    const ymax = yt[yt.length - 1] || 1
    const X = (x: number): number => left + (x / xt[xt.length - 1]) * w
    const Y = (y: number): number => y0 + ph - (y / ymax) * ph
    out.push(`<g>`)
    for (const v of yt) {
      out.push(
        `<line x1="${left}" x2="${left + w}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" stroke="#ddd"/>`,
        `<text x="${left - 6}" y="${(Y(v) + 4).toFixed(1)}" text-anchor="end">${label(v)}</text>`,
      )
    }
    for (const v of xt) {
      out.push(
        `<line x1="${X(v).toFixed(1)}" x2="${X(v).toFixed(1)}" y1="${y0}" y2="${y0 + ph}" stroke="#eee"/>`,
        `<text x="${X(v).toFixed(1)}" y="${y0 + ph + 16}" text-anchor="middle">${label(v)}</text>`,
      )
    }
    out.push(
      `<rect x="${left}" y="${y0}" width="${w}" height="${ph}" fill="none" stroke="#333"/>`,
      `<text transform="translate(16 ${y0 + ph / 2}) rotate(-90)" text-anchor="middle">${esc(panel.ylabel)}</text>`,
    )
    if (pi === p.panels.length - 1) {
      out.push(`<text x="${left + w / 2}" y="${y0 + ph + 34}" text-anchor="middle">${esc(p.xlabel)}</text>`)
    }
    panel.lines.forEach((line, li) => {
      let d = ''
      let pen = false
      line.values.forEach((v, x) => {
        if (!Number.isFinite(v)) {
          pen = false
          return
        }
        d += `${pen ? 'L' : 'M'}${X(x).toFixed(1)} ${Y(v).toFixed(1)}`
        pen = true
      })
      const dash = line.dash === undefined ? '' : ` stroke-dasharray="${esc(line.dash)}"`
      out.push(`<path d="${d}" fill="none" stroke="${esc(line.color)}" stroke-width="1.6"${dash}/>`)
      const ly = y0 + 12 + li * 18
      out.push(
        `<line x1="${left + w + 12}" x2="${left + w + 40}" y1="${ly}" y2="${ly}" stroke="${esc(line.color)}" stroke-width="2"${dash}/>`,
        `<text x="${left + w + 46}" y="${ly + 4}">${esc(line.name)}</text>`,
      )
    })
    out.push(`</g>`)
  })
  out.push(`</svg>`)
  return out.join('\n') + '\n'
}
