package broker

import (
	"errors"
	"net"
	"strconv"
)

// Command is a broker's command line for a process this package does not
// run itself: one a service manager or a promoter's command starts in the
// background.
type Command struct {
	Argv     []string // java and its arguments
	Endpoint Endpoint // where it will listen, once started
}

// Prepare writes the broker's configuration into o.WorkDir, as Launch
// does, and returns the command that runs it. It leaves o.DataDir alone:
// it may be on a filesystem that is mounted only before the broker
// starts. o.Port is required (nothing can tell now which port will be
// free then).
func Prepare(o Options) (Command, error) {
	o.setDefaults()
	if o.DataDir == "" || o.WorkDir == "" || o.Port == 0 {
		return Command{}, errors.New("broker: Prepare needs Options.DataDir, WorkDir and Port")
	}
	java, err := o.installation()
	if err != nil {
		return Command{}, err
	}
	if err := o.absolute(); err != nil {
		return Command{}, err
	}
	if err := o.writeConfig(); err != nil {
		return Command{}, err
	}
	return Command{
		Argv:     append([]string{java}, javaArgs(o.Home, o.WorkDir, o.DataDir, o.Heap)...),
		Endpoint: Endpoint{Addr: net.JoinHostPort(o.Host, strconv.Itoa(o.Port)), Netns: o.Netns},
	}, nil
}
