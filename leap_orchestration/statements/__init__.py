"""Partner statements: what each partner is paid on, versioned, explained, and delivered on its own channel."""
