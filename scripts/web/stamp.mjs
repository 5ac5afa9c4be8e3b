// Reads picam's latency stamp (docs/STAMP.md) from the top band of an RGBA picture, as
// a browser's canvas hands it out (getImageData).
//
// `readStamp` is self-contained (no imports, no module-level names) because measure.mjs
// ships its source text into the page and runs it there on every presented frame.

/**
 * @param {Uint8ClampedArray|Uint8Array} rgba  pixels, 4 bytes each, rows of `width`
 * @param {number} width   picture width in pixels
 * @param {number} height  rows present in `rgba` (the band is enough)
 * @returns {{frame: number, timeUs: number} | null}  null when there is no valid stamp
 */
export function readStamp(rgba, width, height) {
  const BLOCK = 16;
  const BITS = 112;
  const cols = Math.floor(width / BLOCK);
  if (cols === 0) return null;
  const band = Math.ceil(BITS / cols) * BLOCK;
  if (band > height || rgba.length < width * band * 4) return null;
  const bytes = new Uint8Array(14);
  for (let bit = 0; bit < BITS; bit++) {
    const bx = (bit % cols) * BLOCK;
    const by = Math.floor(bit / cols) * BLOCK;
    // The inner 8x8 of the square: its edges may carry ringing from the neighbours.
    let sum = 0;
    for (let row = by + 4; row < by + 12; row++) {
      let at = (row * width + bx + 4) * 4;
      for (let x = 0; x < 8; x++, at += 4) {
        sum += 0.299 * rgba[at] + 0.587 * rgba[at + 1] + 0.114 * rgba[at + 2];
      }
    }
    if (sum / 64 >= 128) bytes[bit >> 3] |= 0x80 >> (bit & 7);
  }
  // CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of the first 12 bytes.
  let crc = 0xffff;
  for (let i = 0; i < 12; i++) {
    crc ^= bytes[i] << 8;
    for (let k = 0; k < 8; k++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  if (crc !== ((bytes[12] << 8) | bytes[13])) return null;
  const view = new DataView(bytes.buffer);
  // µs since the epoch stay below 2^53 for the next few centuries: a Number is exact.
  const timeUs = view.getUint32(4) * 2 ** 32 + view.getUint32(8);
  return { frame: view.getUint32(0), timeUs };
}

/** Height in rows of the stamp band for a picture `width` wide (0 when none fits). */
export function bandHeight(width) {
  const cols = Math.floor(width / 16);
  return cols === 0 ? 0 : Math.ceil(112 / cols) * 16;
}
