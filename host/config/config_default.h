/* Which config file a command reads when none is named with -c. */
#ifndef ND_CONFIG_DEFAULT_H
#define ND_CONFIG_DEFAULT_H

/* The installed config, <sysconfdir>/notifd/notifd.yaml (compiled in). */
const char *nd_config_installed_path(void);

/* $NOTIFD_CONFIG when set and not empty, else the installed config when it
 * is readable, else NULL (the caller then wants -c). */
const char *nd_config_default_path(void);

#endif
