// @signet/client on Node.js (the "node" export condition): the portable
// package of index.js, with node:crypto installed as its native provider,
// so that signing, verifying and hashing run at native speed. The API and
// its results are those of index.js.

import './node-native.js';

export * from './index.js';
