// Package leaky exposes internal identifiers in every way apisurface must
// notice, and hides them in the ways it must not report.
package leaky

import (
	"net/http"

	"example.com/mod/internal/engine"
	lim "example.com/mod/internal/limits"
)

const Default = engine.DefaultSteps

var ErrPublic = http.ErrServerClosed

type Limits = lim.Limits

type Config struct {
	Engine  *engine.Engine
	Name    string
	private engine.Secret
}

type Worker struct {
	engine.Defaults[int]
	hidden *engine.Engine
}

type Hidden interface {
	Run(engine.Job) error
}

func New(cfg Config) (*Worker, error) { return nil, nil }

func (w *Worker) Work(job engine.Job) error { return nil }

func (w *Worker) Clean() {}

func helper(e *engine.Engine) {}

type unexported struct{}

func (unexported) Leak(e *engine.Engine) {}
