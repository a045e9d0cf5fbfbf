// Public surface of @opensora/text: filled by its issue (see README.md).
export {};
