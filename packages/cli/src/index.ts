// Public surface of @opensora/cli: filled by its issue (see README.md).
export {};
