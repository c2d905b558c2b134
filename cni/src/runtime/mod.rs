//! CNI runtime (in progress).
