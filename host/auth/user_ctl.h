/* `notifd user add|passwd|del|list`: operators manage built-in accounts in
 * the users database of a config's data dir. */
#ifndef ND_USER_CTL_H
#define ND_USER_CTL_H

/* argv[0] is "user".  Exit status: 0 ok, 1 failure, 2 usage or config
 * error. */
int nd_user_ctl_main(int argc, char **argv);

#endif
