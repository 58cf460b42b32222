/**
 * What a connection ID may be. Its own module, free of zod, so the consumer client library can
 * check IDs without pulling the handlers' schema library into consumer bundles.
 */
export const CONNECTION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
