/* `notifd bus produce|tail ...`: the operator tool (see its --help). */
#ifndef ND_BUS_CTL_H
#define ND_BUS_CTL_H

/* argv[0] is "bus".  Returns the process exit code. */
int nd_bus_ctl_main(int argc, char **argv);

#endif
