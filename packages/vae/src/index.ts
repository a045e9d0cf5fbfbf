// Public surface of @opensora/vae: filled by its issue (see README.md).
export {};
