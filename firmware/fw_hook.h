/* Force-included (-include) when compiling the generated model, so that
 * TINYCOMP_LAYER_HOOK(i) -> fw_layer_mark(i) has a prototype. */
#ifndef TINYCOMP_FW_HOOK_H
#define TINYCOMP_FW_HOOK_H
void fw_layer_mark(int layer);
#endif
