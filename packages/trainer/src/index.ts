// Public surface of @opensora/trainer: filled by its issue (see README.md).
export {};
