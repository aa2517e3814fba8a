/* ates: the command line (placeholder until the runtime lands). */
#include <stdio.h>
int main(void)
{
    printf("ates %s\n", ATES_VERSION);
    return 0;
}
