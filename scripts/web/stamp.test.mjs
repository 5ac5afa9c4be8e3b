// node --test scripts/web/stamp.test.mjs: the browser-side stamp reader against bands
// painted here the way docs/STAMP.md says (and media/src/stamp.rs paints them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readStamp, bandHeight } from './stamp.mjs';

// CRC-16/CCITT-FALSE, written independently of the reader's.
function crc16(bytes) {
  let crc = 0xffff;
  for (const b of bytes) {
    for (let k = 7; k >= 0; k--) {
      const top = ((crc >> 15) ^ (b >> k)) & 1;
      crc = ((crc << 1) & 0xffff) ^ (top ? 0x1021 : 0);
    }
  }
  return crc;
}

// An RGBA picture `width` x `height`, grey 90 everywhere, with the stamp painted as
// studio-range luma (235 / 16) converted to full-range RGB the way a browser shows it,
// plus `noise` of deterministic per-channel jitter.
function paint(width, height, frame, timeUs, { noise = 0, colour = false } = {}) {
  const bytes = new Uint8Array(14);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, frame);
  view.setBigUint64(4, BigInt(timeUs));
  view.setUint16(12, crc16(bytes.subarray(0, 12)));
  const rgba = new Uint8ClampedArray(width * height * 4).fill(90);
  const cols = Math.floor(width / 16);
  let seed = 12345;
  const jitter = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return noise ? (seed % (2 * noise + 1)) - noise : 0;
  };
  for (let bit = 0; bit < 112; bit++) {
    const on = (bytes[bit >> 3] & (0x80 >> (bit & 7))) !== 0;
    const luma = on ? 235 : 16;
    const full = Math.round(((luma - 16) * 255) / 219);
    const bx = (bit % cols) * 16;
    const by = Math.floor(bit / cols) * 16;
    for (let y = by; y < by + 16; y++) {
      for (let x = bx; x < bx + 16; x++) {
        const at = (y * width + x) * 4;
        // A colour cast that keeps the luma: the reader must weigh R, G and B.
        const tint = colour ? 20 : 0;
        rgba[at] = full + tint + jitter();
        rgba[at + 1] = full - Math.round((tint * 0.299) / 0.587) + jitter();
        rgba[at + 2] = full + jitter();
        rgba[at + 3] = 255;
      }
    }
  }
  return rgba;
}

test('the CRC used to paint is CCITT-FALSE (check value of "123456789")', () => {
  assert.equal(crc16(new TextEncoder().encode('123456789')), 0x29b1);
});

test('reads back what was painted, at several widths', () => {
  for (const [w, h] of [[320, 240], [640, 480], [1280, 720], [1920, 1080]]) {
    const timeUs = 1_764_900_000_123_456 + w;
    const rgba = paint(w, h, 0xfedc_ba98 - w, timeUs);
    assert.deepEqual(readStamp(rgba, w, h), { frame: 0xfedc_ba98 - w, timeUs }, `${w}x${h}`);
  }
});

test('only the band is needed', () => {
  const rgba = paint(1280, 720, 7, 1_800_000_000_000_000);
  assert.equal(bandHeight(1280), 32);
  const band = rgba.subarray(0, 1280 * 32 * 4);
  assert.deepEqual(readStamp(band, 1280, 32), { frame: 7, timeUs: 1_800_000_000_000_000 });
});

test('survives noise and a colour cast that keeps the luma', () => {
  const rgba = paint(640, 480, 42, 1_764_900_000_000_001, { noise: 60, colour: true });
  assert.deepEqual(readStamp(rgba, 640, 480), { frame: 42, timeUs: 1_764_900_000_000_001 });
});

test('a flipped bit, an unpainted picture or a too-small one reads as no stamp', () => {
  const rgba = paint(640, 480, 1, 1_764_900_000_000_000);
  // Invert bit 50's square (640 wide: 40 squares a row, so row 1, column 10).
  const cols = 40;
  const bx = (50 % cols) * 16;
  const by = Math.floor(50 / cols) * 16;
  const flipped = rgba.slice();
  for (let y = by; y < by + 16; y++) {
    for (let x = bx; x < bx + 16; x++) {
      const at = (y * 640 + x) * 4;
      const v = flipped[at] > 128 ? 0 : 255;
      flipped[at] = flipped[at + 1] = flipped[at + 2] = v;
    }
  }
  assert.equal(readStamp(flipped, 640, 480), null);
  assert.equal(readStamp(new Uint8ClampedArray(640 * 480 * 4), 640, 480), null);
  assert.equal(readStamp(new Uint8ClampedArray(15 * 4 * 4), 15, 4), null);
  assert.equal(readStamp(rgba.subarray(0, 640 * 16 * 4), 640, 16), null, 'band cut short');
});
