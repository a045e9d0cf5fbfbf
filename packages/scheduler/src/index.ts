// Public surface of @opensora/scheduler: filled by its issue (see README.md).
export {};
