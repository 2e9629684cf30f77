package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/cutpoint/cutpoint/internal/launch"
	"github.com/cutpoint/cutpoint/rank"
)

// GlobalOptions are the flags every command shares and the process's
// standard streams (tests swap them).
type GlobalOptions struct {
	Config    string // config file; default ./cutpoint.yaml when it exists
	LogLevel  string
	LogFormat string // text | json

	Stdout io.Writer
	Stderr io.Writer

	Logger *slog.Logger

	// started is set once a command's own pre-run hook runs: an error
	// before that (unknown command, bad flag or value, wrong arguments)
	// came from parsing the command line, a usage error.
	started bool
}

func newRootCommand(g *GlobalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "cutpoint",
		Short: "Consistent checkpoints and automatic recovery for HPC jobs",
		Long: `cutpoint launches a job of N ranks, takes Chandy-Lamport consistent cuts
of all ranks while they run, stores them compressed and verified, and when a
rank is lost rolls the job back to the latest committed cut, respawning only
what was lost.

Configuration: flags > environment (CUTPOINT_<FLAG>, dashes as underscores)
> config file (cutpoint.yaml in the working directory, or --config).

Exit codes: 0 success; 1 failure; 2 usage or configuration error;
3 verification found damage; 4 feature not in this build;
5 stopped by a signal after a final cut was committed;
6 stopped by a signal with no final cut committed.`,
		Version:       version(),
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			g.started = true
			onArgv := argvSecrets(cmd) // before the environment fills flags
			if err := applyConfig(g, cmd); err != nil {
				return usageError(err)
			}
			if err := g.setupLogging(); err != nil {
				return err
			}
			warnArgvSecrets(g.Logger, onArgv)
			return nil
		},
	}
	// A bad flag or value is a usage error (exit 2), like a bad config key.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	root.SetOut(g.Stdout)
	root.SetErr(g.Stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.Config, "config", "", "config file (default ./cutpoint.yaml if present)")
	pf.StringVar(&g.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&g.LogFormat, "log-format", "text", "log format: text or json")

	for _, newCmd := range commands {
		root.AddCommand(newCmd(g))
	}
	return root
}

// commands lists the constructors of the subcommands; each lives in its own
// cmd_<verb>.go file.
var commands = []func(*GlobalOptions) *cobra.Command{
	newRunCommand,
	newCoordinatorCommand,
	newRankCommand,
	newNatsCommand,
	newLsCommand,
	newVerifyCommand,
	newGcCommand,
	newRmCommand,
	newInspectCommand,
	newBenchCommand,
}

// execute runs the command line; an error from parsing it (unknown
// command, wrong arguments, bad flags) is marked as a usage error.
func execute(ctx context.Context, g *GlobalOptions, root *cobra.Command, args []string) error {
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var ee *exitError
	if err != nil && !g.started && !errors.As(err, &ee) {
		err = usageError(err)
	}
	return err
}

func (g *GlobalOptions) setupLogging() error {
	if g.Stderr == nil {
		g.Stderr = os.Stderr
	}
	lg, err := rank.NewLogger(g.Stderr, g.LogLevel, g.LogFormat)
	if err != nil {
		return usageError(fmt.Errorf("--log-level/--log-format: %w", err))
	}
	g.Logger = lg
	slog.SetDefault(g.Logger)
	return nil
}

// withStderr returns a copy of g that logs to w (same level and format).
func (g *GlobalOptions) withStderr(w io.Writer) *GlobalOptions {
	c := *g
	c.Stderr = w
	c.Logger, _ = rank.NewLogger(w, g.LogLevel, g.LogFormat) // checked by setupLogging
	slog.SetDefault(c.Logger)
	return &c
}

// relay is how the ranks' output joins this process's log stream.
func (g *GlobalOptions) relay() launch.Relay {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(g.LogLevel)) // checked by setupLogging
	return launch.Relay{Level: lvl, JSON: g.LogFormat == "json"}
}

// rankLogEnv passes this process's log settings to the ranks.
func (g *GlobalOptions) rankLogEnv() []string {
	return []string{rank.EnvLogLevel + "=" + g.LogLevel, rank.EnvLogFormat + "=" + g.LogFormat}
}

// applyConfig fills every flag the user did not set on the command line from
// the environment (CUTPOINT_<NAME>) or the config file, in that order. Values
// go through the flag's own parser, so a bad value is reported with its key
// and where it came from.
func applyConfig(g *GlobalOptions, cmd *cobra.Command) error {
	v := viper.New()
	v.SetEnvPrefix("CUTPOINT")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))

	path := g.Config
	if path == "" {
		path = os.Getenv("CUTPOINT_CONFIG")
	}
	explicit := path != ""
	if path == "" {
		path = "cutpoint.yaml"
	}
	fromFile := map[string]bool{}
	if path == os.DevNull {
		// No config file (scripts and tests say so explicitly).
	} else if _, err := os.Stat(path); err == nil {
		data, err := readConfigFile(path) // refuses a file another user could have written
		if err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		for _, k := range v.AllKeys() {
			fromFile[k] = true
		}
		if err := checkKnownKeys(cmd.Root(), v.AllKeys(), path); err != nil {
			return err
		}
	} else if explicit {
		return fmt.Errorf("config file %s: %w", path, err)
	}

	var firstErr error
	set := func(f *pflag.Flag) {
		if firstErr != nil || f.Changed || f.Name == "config" || f.Name == "help" {
			return
		}
		env := "CUTPOINT_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if val, ok := os.LookupEnv(env); ok {
			if err := f.Value.Set(val); err != nil {
				firstErr = fmt.Errorf("environment %s=%q: %w", env, val, err)
			}
			f.Changed = true
			return
		}
		if fromFile[f.Name] {
			val := configString(v.Get(f.Name))
			if err := f.Value.Set(val); err != nil {
				firstErr = fmt.Errorf("config file %s: key %q = %q: %w", path, f.Name, val, err)
			}
			f.Changed = true
		}
	}
	cmd.Flags().VisitAll(set)
	cmd.InheritedFlags().VisitAll(set)
	return firstErr
}

// configString renders a YAML value the way a flag would be written.
func configString(x any) string {
	switch t := x.(type) {
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, ",")
	default:
		return fmt.Sprint(t)
	}
}

// checkKnownKeys rejects config keys that no command has a flag for, so a
// typo in cutpoint.yaml is an error rather than silently ignored.
func checkKnownKeys(root *cobra.Command, keys []string, path string) error {
	known := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	for _, k := range keys {
		if !known[k] {
			return fmt.Errorf("config file %s: unknown key %q (keys are flag names, e.g. \"ranks\")", path, k)
		}
	}
	return nil
}
