# The molecule scenario of the gpu_node role runs this: the local base image as it is.
FROM madengine/base:bookworm
