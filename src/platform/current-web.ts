// The browser bundle's replacement for current.ts (see scripts/build-browser.mjs).
export { webPlatform as platform } from './web.js';
