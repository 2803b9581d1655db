/* linkcheck.c: an empty program linked with every object of one engine
 * module and only the modules it may call (engine/CMakeLists.txt), so a call
 * up the module graph is an undefined symbol at build time. */
int main(void) { return 0; }
