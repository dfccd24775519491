// Package config reads greenq.yaml, applies defaults and environment
// overrides, and validates it, naming the offending key in every error.
// Flags beat environment, environment beats the file.
package config
