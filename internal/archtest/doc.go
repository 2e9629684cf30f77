// Package archtest holds no code: its test enforces the import graph of
// docs/design.md ("Packages and the direction of dependencies") on the
// module's packages, so that an arrow running back up fails the build's
// tests instead of waiting for a reviewer.
package archtest
