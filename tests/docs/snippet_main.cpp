// The entry point of every doc fragment's executable: fragments are compiled and linked (so a
// missing definition fails too) but not run, as they need the data their doc talks about.
int main() { return 0; }
