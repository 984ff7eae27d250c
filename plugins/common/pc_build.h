/* What this build of the plugins holds (meson options; docs/dependencies.md). */
#ifndef PC_BUILD_H
#define PC_BUILD_H

#ifndef NOTIFD_WITH_MONGODB
#define NOTIFD_WITH_MONGODB 1
#endif

/* The error text of a MongoDB store asked of a build without one. */
#define PC_MONGODB_MISSING \
  "this notifd was built without MongoDB (meson -Dmongodb=enabled with libmongoc installed)"

#endif
