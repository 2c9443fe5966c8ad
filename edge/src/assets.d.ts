declare module "*.ulaw" {
  // esbuild's binary loader gives a Uint8Array, wrangler's Data rule an ArrayBuffer
  const bytes: ArrayBuffer | Uint8Array;
  export default bytes;
}

declare module "*.html" {
  // esbuild's text loader and wrangler's Text rule both give the file as a string
  const text: string;
  export default text;
}
