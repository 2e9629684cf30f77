package natsutil

import (
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// passwordHash is what a server is told of a user's password: its bcrypt
// hash, which nats-server checks a client's password against, so that a
// server's configuration (an authorization file on a shared file system,
// the embedded server's memory) holds no password a client could log in
// with, and the server does not warn of plaintext passwords at start.
//
// The cost is bcrypt's minimum: the passwords are random (128 bits,
// newPassword), which no cost factor makes any harder to guess, while
// every connection of every rank pays the cost once on its server.
func passwordHash(user, password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		// Only a password longer than bcrypt's 72 bytes: none of ours.
		return "", fmt.Errorf("nats user %q: password: %w", user, err)
	}
	return string(h), nil
}
