// Public surface of @opensora/data: filled by its issue (see README.md).
export {};
