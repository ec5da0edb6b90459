// The platform of this build. The browser bundle (scripts/build-browser.mjs) replaces this module
// with current-web.ts, so Node-only imports never reach it.
export { nodePlatform as platform } from './node.js';
