/**
 * plot (lib/sim/svg.ts): line plots as standalone SVG text.
 */
import { strict as assert } from 'assert'
import { plot } from '../../lib/sim'

describe('simulator: plot', () => {
  it('draws each line as one path, leaves a gap at NaN, escapes text, and labels x only under the last panel', () => {
    const svg = plot({
      title: 'a < b & "c"',
      xlabel: 'round',
      width: 400,
      panelHeight: 100,
      panels: [
        { ylabel: 'stale', lines: [{ name: 'depth', values: [0, 2, NaN, 4], color: 'red', dash: '6 3' }] },
        { ylabel: 'rate', lines: [{ name: 'x', values: [1, 1], color: 'blue' }] },
      ],
    })
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="400" height="338"/)
    assert.ok(svg.endsWith('</svg>\n'))
    assert.ok(svg.includes('a &lt; b &amp; &quot;c&quot;'))
    assert.ok(!svg.includes('a < b'))
    const paths = [...svg.matchAll(/<path d="([^"]*)"[^>]*\/>/g)]
    assert.equal(paths.length, 2)
    // Two moves in the first path: the NaN lifts the pen.
    assert.equal(paths[0][1].match(/M/g)?.length, 2)
    assert.equal(paths[0][1].match(/L/g)?.length, 1)
    assert.match(paths[0][0], /stroke-dasharray="6 3"/)
    assert.doesNotMatch(paths[1][0], /stroke-dasharray/)
    assert.equal(svg.match(/>round</g)?.length, 1)
  })

  it('ticks cover the largest value with round numbers; thousands read as k', () => {
    const svg = plot({ title: 't', xlabel: 'x', panels: [{ ylabel: 'y', lines: [{ name: 'n', values: [0, 4200], color: 'black' }] }] })
    const labels = [...svg.matchAll(/text-anchor="end">([^<]*)</g)].map((m) => m[1])
    assert.deepEqual(labels, ['0', '1k', '2k', '3k', '4k', '5k'])
  })
})
