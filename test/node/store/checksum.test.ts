/**
 * Row checksums (lib/node/store/checksum.ts): summed column by column
 * without building the row's text, they equal zlib's CRC-32 of that text.
 */
import * as assert from 'assert'
import * as zlib from 'zlib'
import fc from 'fast-check'
import { rowCrc } from '../../../lib/node/store/checksum'

// The restart path of issue 23: a store's rows are summed without building
// their text (see also test/snapshot.test.ts).
describe('store (SQLite): the restart path', () => {
  const text = fc.oneof(
    fc.string(),
    fc.string({ unit: 'binary' }),
    fc.string({ unit: 'grapheme' }),
    // Lone and paired surrogates, and the characters around them.
    fc.string({ unit: fc.integer({ min: 0xd7f0, max: 0xe010 }).map((c) => String.fromCharCode(c)) }),
    fc.string({ minLength: 250, maxLength: 600 }),
  )
  const version = fc.oneof(
    fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    fc.constantFrom(0, 1e8 - 1, 1e8, 1e8 + 1, 99_999_999_999_999, 1e15, 2 ** 53 - 1, 1_733_555_555_000_000),
    fc.double(),
  )

  it('property: rowCrc is the CRC-32 of the row text (key, source, version, value, signature, NUL between) in UTF-8', () => {
    fc.assert(
      fc.property(text, text, version, text, fc.option(text), (k, s, v, value, sig) => {
        const expected = zlib.crc32(`${k}\u0000${s}\u0000${v}\u0000${value}\u0000${sig ?? ''}`)
        assert.strictEqual(rowCrc(k, s, v, value, sig), expected)
      }),
      { numRuns: 2000 },
    )
  })
})
