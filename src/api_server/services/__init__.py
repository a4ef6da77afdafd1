"""Business logic: keyword-only functions over an AsyncSession that raise domain errors."""
