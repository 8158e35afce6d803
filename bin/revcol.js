#!/usr/bin/env node
// The installed command runs the compiled CLI (npm's prepare step builds dist/).
process.env.REVCOL_CLI = '1';
await import('../dist/cli/main.js');
