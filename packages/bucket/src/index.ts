// Public surface of @opensora/bucket: filled by its issue (see README.md).
export {};
