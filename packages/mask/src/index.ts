// Public surface of @opensora/mask: filled by its issue (see README.md).
export {};
