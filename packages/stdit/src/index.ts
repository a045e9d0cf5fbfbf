// Public surface of @opensora/stdit: filled by its issue (see README.md).
export {};
