declare module "*.ulaw" {
  // esbuild's binary loader gives a Uint8Array, wrangler's Data rule an ArrayBuffer
  const bytes: ArrayBuffer | Uint8Array;
  export default bytes;
}
