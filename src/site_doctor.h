/* site_doctor: doctor's check of the site's TLS answer. */
#ifndef TGF_SITE_DOCTOR_H
#define TGF_SITE_DOCTOR_H

#include "config.h"

/* Probes the fronting target as the daemon does and prints one line per
 * hello kind. Returns 0, or 1 when a kind could not be learned. */
int site_doctor(const tgf_config *cfg);

#endif
