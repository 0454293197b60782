#!/usr/bin/env python3
"""astropy side of the check on the FITS files `simulate --format fits` writes (tests/fits.rs).

  fits_written_peer.py FILE...
      Opens each file with astropy, verifies it against the FITS standard (any fix astropy
      would have to make is an error), and prints, as JSON per file, the data as float64
      values in astropy's row order, the header values tests compare, and the WCS that
      astropy.wcs builds from the header (the kpc offsets of the first and last pixel).
"""
import json
import sys
import warnings

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

out = {}
for path in sys.argv[1:]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(path) as hdul:
            hdul.verify("exception")
            hdu = hdul[0]
            data = np.asarray(hdu.data, dtype=np.float64)
            header = hdu.header
            wcs = WCS(header)
            ny, nx = data.shape
            corners = wcs.wcs_pix2world([[0, 0], [nx - 1, ny - 1]], 0).tolist()
            out[path] = {
                "shape": list(data.shape),
                "values": data.ravel().tolist(),
                "BITPIX": header["BITPIX"],
                "BUNIT": header["BUNIT"],
                "OBJECT": header["OBJECT"],
                "CAMERA": header["CAMERA"],
                "CDELT1": header["CDELT1"],
                "CUNIT1": str(wcs.wcs.cunit[0]),
                "corners_kpc": corners,
            }
print(json.dumps(out))
