"""What readers do on their own: sign up with double opt-in, confirm, manage their
subscription; and the one-off messages (confirmations, welcomes) that go to them."""
