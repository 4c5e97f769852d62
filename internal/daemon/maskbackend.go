package daemon

import (
	"context"

	"github.com/tikvops/operator/internal/diagnose"
	"github.com/tikvops/operator/internal/safetext"
)

// maskBackend masks the configuration's secrets (API keys, tokens, URL
// passwords) in the errors of a diagnosis backend before the runner logs
// and stores them: a provider whose error body echoes the key sent leaks
// nothing. The error chain is kept (errors.Is/As see the original).
type maskBackend struct {
	diagnose.Backend
	secrets []string
}

// maskErrors wraps b so its errors have secrets masked; b itself when
// there is no secret.
func maskErrors(b diagnose.Backend, secrets []string) diagnose.Backend {
	if len(secrets) == 0 || b == nil {
		return b
	}
	return maskBackend{Backend: b, secrets: secrets}
}

func (m maskBackend) Diagnose(ctx context.Context, c *diagnose.Context) (*diagnose.Diagnosis, error) {
	d, err := m.Backend.Diagnose(ctx, c)
	if err != nil {
		if msg := safetext.Mask(err.Error(), m.secrets...); msg != err.Error() {
			err = &maskedError{msg: msg, err: err}
		}
	}
	return d, err
}

// maskedError is an error whose text has secrets masked.
type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }
