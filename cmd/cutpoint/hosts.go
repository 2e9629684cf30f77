package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/pflag"

	"github.com/cutpoint/cutpoint/internal/launch"
	"github.com/cutpoint/cutpoint/rank"
)

// hostsOptions place the ranks on several hosts (run, coordinator).
type hostsOptions struct {
	Hosts    string
	SpawnCmd string
}

func (o *hostsOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Hosts, "hosts", "", "run the ranks on these hosts, HOST:SLOTS,... (block placement; slots beyond --ranks are spares for ranks of a lost host)")
	f.StringVar(&o.SpawnCmd, "spawn-cmd", "", "--hosts: command that starts a rank on a host, run by /bin/sh -c; {host} the host, {cmd} the rank's command line with its environment, {qcmd} the same as one quoted word (default \""+launch.DefaultSpawnCmd+"\")")
}

// parse checks the flags against the number of ranks; nil hosts when
// --hosts is not given.
func (o *hostsOptions) parse(ranks int) ([]launch.Host, error) {
	if o.Hosts == "" {
		if o.SpawnCmd != "" {
			return nil, errors.New("--spawn-cmd needs --hosts")
		}
		return nil, nil
	}
	h, err := launch.ParseHosts(o.Hosts)
	if err != nil {
		return nil, fmt.Errorf("--hosts: %w", err)
	}
	if _, err := launch.NewPlacement(h, ranks); err != nil {
		return nil, fmt.Errorf("--hosts: %w (--ranks %d)", err, ranks)
	}
	if o.SpawnCmd != "" && !strings.Contains(o.SpawnCmd, "{cmd}") && !strings.Contains(o.SpawnCmd, "{qcmd}") {
		return nil, fmt.Errorf("--spawn-cmd %q: has no {cmd} (or {qcmd}) for the rank's command line", o.SpawnCmd)
	}
	return h, nil
}

// secretVars names the rank variables that must not be on a command line:
// the token, and the URL when it carries credentials.
func secretVars(natsURL, token string, password bool) []string {
	var s []string
	if token != "" {
		s = append(s, rank.EnvNATSToken)
	}
	if password {
		s = append(s, rank.EnvNATSPassword)
	}
	if u, err := url.Parse(natsURL); err == nil && u.User != nil {
		s = append(s, rank.EnvNATS)
	}
	return s
}
